/** @file
 * @brief Includes every stable public header of asymbp. */
#ifndef ASYMBP_ASYMBP_H
#define ASYMBP_ASYMBP_H
#include "asymbp/export.h"
#include "asymbp/version.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/rng.h"
#include "asymbp/tensor.h"
#include "asymbp/plugin.h"
#include "asymbp/dist.h"
#include "asymbp/net.h"
#include "asymbp/feedback.h"
#include "asymbp/update.h"
#include "asymbp/data.h"
#include "asymbp/trainer.h"
#endif /* ASYMBP_ASYMBP_H */
