/* One runner for every suite; the list comes from the tests/check_<module>.c file names. */
#include <stdlib.h>
#include <check.h>

#define SUITE(m) Suite *asymbp_test_##m##_suite(void);
#include "suites.h"
#undef SUITE

int main(void)
{
    SRunner *sr = srunner_create(NULL);
    int failed;
#define SUITE(m) srunner_add_suite(sr, asymbp_test_##m##_suite());
#include "suites.h"
#undef SUITE
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
