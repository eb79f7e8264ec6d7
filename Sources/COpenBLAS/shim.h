#include <cblas.h>
// Not declared by every cblas.h; OpenBLAS exports both.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
