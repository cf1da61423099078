import numpy as np, ctypes
libm=ctypes.CDLL('libm.so.6'); 
# vectorized call via numpy? use ctypes loop on 200k samples
libm.expf.restype=ctypes.c_float; libm.expf.argtypes=[ctypes.c_float]
rng=np.random.default_rng(0); x=(-rng.random(200000)*40).astype(np.float32)
a=np.array([libm.expf(float(v)) for v in x],np.float32)
b=np.exp(x.astype(np.float64)).astype(np.float32)
print('glibc expf vs correctly-rounded(f64 exp): mismatches',(a!=b).sum(),'of',len(x))
