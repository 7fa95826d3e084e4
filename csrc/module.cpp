// Python module dctqa._C. Importing it runs the TORCH_LIBRARY registrations of every
// op in this shared object; the ops are then reached through torch.ops.dctqa.
#include <Python.h>

static struct PyModuleDef dctqa_c_module = {PyModuleDef_HEAD_INIT, "_C",
                                            "dctqa fused torch ops (torch.ops.dctqa)", -1,
                                            nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&dctqa_c_module); }
