/* Builds as C and as C++ against the installed library: version, a tensor, a status string. */
#include <stdio.h>
#include <string.h>
#include <asymbp/asymbp.h>

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_tensor_t *t = NULL;
    int64_t shape[2] = {2, 3};
    if (strcmp(asymbp_version_string(), ASYMBP_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s but library %s\n", ASYMBP_VERSION_STRING, asymbp_version_string());
        return 1;
    }
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    if (asymbp_tensor_create(ctx, 2, shape, &t) != ASYMBP_OK) return 1;
    if (asymbp_tensor_fill(t, 1.0f) != ASYMBP_OK || asymbp_tensor_numel(t) != 6) return 1;
    if (asymbp_tensor_create(ctx, 0, shape, NULL) != ASYMBP_E_INVALID) return 1;
    printf("asymbp %s (%s): %s\n", asymbp_version_string(), asymbp_blas_name(), asymbp_strerror(ASYMBP_OK));
    asymbp_tensor_destroy(t);
    asymbp_ctx_destroy(ctx);
    return 0;
}
