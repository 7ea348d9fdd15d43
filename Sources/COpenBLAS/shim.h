#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <cblas.h>

// OpenBLAS extensions. Debian's cblas.h may be another implementation's (it is an alternatives
// link), so declare the ones we use here; identical redeclarations are harmless.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
#endif
