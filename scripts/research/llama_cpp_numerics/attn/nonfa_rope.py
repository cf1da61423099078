import sys, numpy as np, ctypes, pickle
sys.path.insert(0,'/work/main/scripts/research/llama_cpp_numerics'); sys.path.insert(0,'/tmp')
from attn_exact import fma, f16, load, F, D
from nonfa_exact import kq_tinyblas, softmax_rows, pv_tinyblas
libm=ctypes.CDLL('libm.so.6')
for n in ('cosf','sinf','powf'): getattr(libm,n).restype=ctypes.c_float
libm.cosf.argtypes=libm.sinf.argtypes=[ctypes.c_float]; libm.powf.argtypes=[ctypes.c_float,ctypes.c_float]
out,order,ids,T=load('/tmp/nonfa2.pkl'); N=len(ids)
op=[o for o in order if o[0]=='Qcur-0' and o[1]=='ROPE'][0][6]
fb=np.array(op[5],np.int32).view(F); print('freq_base',fb,'mode',op[2])
ts=F(libm.powf(float(fb),float(F(-2.0)/F(64))))
C=np.zeros((N,32),F); S=np.zeros((N,32),F)
for p in range(N):
    th=F(p)
    for i in range(32): C[p,i]=libm.cosf(float(th)); S[p,i]=libm.sinf(float(th)); th=F(th*ts)
def rope(x,fmac):  # x [N,H,64]
    x0=x[...,0::2]; x1=x[...,1::2]; c=C[:,None,:]; s=S[:,None,:]
    if fmac:
        a=fma(x0,c,-(x1*s).astype(F)); b=fma(x0,s,(x1*c).astype(F))
    else:
        a=((x0*c).astype(F)-(x1*s).astype(F)).astype(F); b=((x0*s).astype(F)+(x1*c).astype(F)).astype(F)
    o=np.empty_like(x); o[...,0::2]=a; o[...,1::2]=b; return o
for l in (0,1,5,10):
    for nm,H in (('Qcur',9),('Kcur',3)):
        pre=T(f'{nm}-{l}@RESHAPE').reshape(N,H,64); ref=T(f'{nm}-{l}@ROPE').reshape(N,H,64)
        for fm in (False,True):
            d=(rope(pre,fm)!=ref).any((1,2)); print(f'L{l} {nm} rope fma={fm}: mismatching positions {np.where(d)[0][:10]} count {d.sum()}')
# chained attention Q,K,V -> kqv, no llama intermediates
mask=np.where(np.arange(256)[None,:]<=np.arange(N)[:,None],F(0),F(-np.inf)).astype(F)
for l in (0,10):
    Q=T(f'Qcur-{l}').reshape(N,9,64); K=f16(T(f'Kcur-{l}').reshape(N,3,64)); V=f16(T(f'Vcur-{l}').reshape(N,3,64))
    KQV=T(f'kqv_out-{l}').reshape(N,9,64); nd=0
    for h in range(9):
        kq=kq_tinyblas(K[:,h//3],f16(Q[:,h])); sm=softmax_rows(kq,mask); pv=pv_tinyblas(V[:,h//3],f16(sm))
        nd+=(pv!=KQV[:,h]).sum()
    print(f'L{l} chained Q,K,V -> kqv_out: {nd} differing of {N*576}',flush=True)
def rope_alt(x):
    x0=x[...,0::2]; x1=x[...,1::2]; c=C[:,None,:]; s=S[:,None,:]
    a=fma(-x1,s,(x0*c).astype(F)); b=fma(x1,c,(x0*s).astype(F))
    o=np.empty_like(x); o[...,0::2]=a; o[...,1::2]=b; return o
for l in (0,):
    for nm,H in (('Qcur',9),('Kcur',3)):
        pre=T(f'{nm}-{l}@RESHAPE').reshape(N,H,64); ref=T(f'{nm}-{l}@ROPE').reshape(N,H,64)
        print(f'ALT contraction (second product fused) L{l} {nm}: mismatching elems',(rope_alt(pre)!=ref).sum())
