// The flag `ck_gemm_recording_active` reads (CKernels.h): set only while the benchmark harness
// records a train step's GEMMs.
#include "CKernels.h"

int ck_gemm_recording = 0;
