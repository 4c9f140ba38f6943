/* One runner for every suite; the list comes from the tests/check_<module>.c file names.
 * It also owns the run's scratch folder (test_util.h): made before the suites run, checked to
 * be empty and removed after. */
#include <stdio.h>
#include <stdlib.h>
#include <check.h>
#include "test_util.h"

#define SUITE(m) Suite *asymbp_test_##m##_suite(void);
#include "suites.h"
#undef SUITE

int main(void)
{
    SRunner *sr;
    const char *tmp = getenv("TMPDIR");
    char root[4096];
    int failed, left;
    snprintf(root, sizeof root, "%s/asymbp-tests-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root) || setenv("ASYMBP_TEST_TMP", root, 1) != 0) {
        perror("asymbp-tests: scratch folder");
        return EXIT_FAILURE;
    }
    sr = srunner_create(NULL);
#define SUITE(m) srunner_add_suite(sr, asymbp_test_##m##_suite());
#include "suites.h"
#undef SUITE
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    left = test_dir_entries(root, "asymbp-tests: left behind by a test: ");
    if (test_rm_tree(root) != 0) fprintf(stderr, "asymbp-tests: could not remove %s\n", root);
    if (left != 0) fprintf(stderr, "asymbp-tests: the tests left %d files or folders behind\n", left);
    return failed == 0 && left == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
