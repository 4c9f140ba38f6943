/* asymbp - the command-line tool: train, eval, info, gradcheck.  The commands live in
 * cmd_*.c, the option table in options.c (docs/cli.md). */
#include <stdio.h>
#include <string.h>
#include "cli.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_overview(stdout);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_overview(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("asymbp %s (%s)\n", asymbp_version_string(), asymbp_blas_name());
        return 0;
    }
    if (!strcmp(argv[1], "--man")) {   /* the man page asymbp(1), generated from the option table */
        print_man(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "train") || !strcmp(argv[1], "eval") || !strcmp(argv[1], "info") ||
        !strcmp(argv[1], "gradcheck") || !strcmp(argv[1], "sweep"))
        cli_command = argv[1];
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "gradcheck")) return cmd_gradcheck(argc - 2, argv + 2);
    if (!strcmp(argv[1], "sweep")) return cmd_sweep(argc - 2, argv + 2);
    return cli_usage("unknown command '%s'", argv[1]);
}
