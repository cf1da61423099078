# Non-FA attention (llama.cpp, flash_attn_type DISABLED) vs ondo's recipe, op by op.
# Dump: LAYS=0,1,5 python /tmp/nonfa_dump.py ko 5 256 /tmp/nonfa.pkl
# Check: python /tmp/nonfa_exact.py /tmp/nonfa.pkl 0,1,5
# RoPE + chained-attention check (the actual culprit: RoPE is FMA-contracted): python /tmp/nonfa_rope.py  (reads /tmp/nonfa2.pkl,
#   dumped with KEEP=Qcur,Kcur,Vcur,kq,kq_soft_max,kqv,kqv_out LAYS=0,1,5,10 python /tmp/nonfa_dump.py ko 5 256 /tmp/nonfa2.pkl)
import sys, numpy as np
sys.path.insert(0,'/work/main/scripts/research/llama_cpp_numerics')
from attn_exact import fma, f16, v_expf, hsum8, load, F, D
np.seterr(all='ignore')
def hsum8v(a):  # a[...,8]
    s=[(a[...,4+k]+a[...,k]).astype(F) for k in range(4)]
    return ((s[0]+s[2]).astype(F)+(s[1]+s[3]).astype(F)).astype(F)
def kq_tinyblas(Kh,Qh):  # Kh [nk,64] f16-valued, Qh [nq,64] f16-valued -> [nq,nk]
    acc=np.zeros((Qh.shape[0],Kh.shape[0],8),F)
    for i in range(0,Kh.shape[1],8): acc=fma(Kh[None,:,i:i+8],Qh[:,None,i:i+8],acc)
    return hsum8v(acc)
def softmax_rows(kq,mask,scale=F(0.125)):
    w=(kq*scale).astype(F); w=(w+mask).astype(F)
    mx=w.max(1,keepdims=True)
    y=v_expf((w-mx).astype(F)); y=np.where(np.isneginf(w),F(0),y)
    s=np.zeros(w.shape[0],D)
    for i in range(0,w.shape[1],8): s+=hsum8v(y[:,i:i+8]).astype(D)
    inv=(1.0/s).astype(F)
    return (y*inv[:,None]).astype(F)
def pv_tinyblas(Vh,P):  # Vh [nk,64], P [nq,nk] (f16-valued) -> [nq,64]; lane = key mod 8
    nk=Vh.shape[0]; acc=np.zeros((P.shape[0],Vh.shape[1],8),F)
    for k0 in range(0,nk,8): acc=fma(Vh[None,k0:k0+8,:].transpose(0,2,1),P[:,None,k0:k0+8],acc)
    return hsum8v(acc)
if __name__=='__main__':
    out,order,ids,T=load(sys.argv[1]); N=len(ids); NP=int(sys.argv[3]) if len(sys.argv)>3 else 41
    layers=[int(a) for a in sys.argv[2].split(',')]
    mask=np.where(np.arange(256)[None,:]<=np.arange(N)[:,None],F(0),F(-np.inf)).astype(F)
    for l in layers:
        Q=T(f'Qcur-{l}').reshape(N,9,64); K=f16(T(f'Kcur-{l}').reshape(N,3,64)); V=f16(T(f'Vcur-{l}').reshape(N,3,64))
        KQ=T(f'kq-{l}').reshape(9,N,256); SM=T(f'kq_soft_max-{l}').reshape(9,N,256); KQV=T(f'kqv-{l}').reshape(9,N,64)
        for h in range(9):
            kq=kq_tinyblas(K[:,h//3],f16(Q[:NP,h]))
            d=(kq!=KQ[h,:NP]); 
            sm=softmax_rows(KQ[h,:NP],mask[:NP]); ds=(sm!=SM[h,:NP])
            pv=pv_tinyblas(V[:,h//3],f16(SM[h,:NP])); dv=(pv!=KQV[h,:NP])
            print(f'L{l} h{h}: kq diffs {d.sum()} (rows {np.where(d.any(1))[0][:8]}), softmax diffs {ds.sum()} (rows {np.where(ds.any(1))[0][:8]}), kqv diffs {dv.sum()} (rows {np.where(dv.any(1))[0][:8]})',flush=True)
