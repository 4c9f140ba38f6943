#include "asymbp/version.h"

const char *asymbp_version_string(void) { return ASYMBP_VERSION_STRING; }
int asymbp_version_number(void) { return ASYMBP_VERSION_NUMBER; }
