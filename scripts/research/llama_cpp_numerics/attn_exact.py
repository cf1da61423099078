# Bit-exact emulation of llama.cpp's (ggml-cpu, AVX2) FLASH_ATTN_EXT for SmolLM2-135M.
# Dumps: KEEP=Qcur,Kcur,Vcur,kqv_out /work/main/.venv/bin/python /tmp/attn/dumpn.py ko 5 256 OUT.pkl
#        (fixture chunk lang/chunk, first N tokens, ONE batch, n_ctx=n_batch=n_ubatch=256, 2 threads)
# Check: python /tmp/attn/runall.py OUT.pkl [layers]   -> tiled path, all positions (N >= 64)
#        python /tmp/attn/oc.py OUT.pkl 0,10            -> one_chunk path (N < 64)
#        python /tmp/attn_exact.py OUT.pkl 0 4           -> per-position table, tiled/one_chunk/ondo
# Two CPU code paths (ggml/src/ggml-cpu/ops.cpp, ggml_compute_forward_flash_attn_ext_f16):
#  * tiled  (n_tokens in ubatch >= GGML_FA_TILE_Q = 64): ggml_compute_forward_flash_attn_ext_tiled
#  * one_chunk (fewer tokens, e.g. decode): ggml_compute_forward_flash_attn_ext_f16_one_chunk
import numpy as np, pickle, sys, ctypes, os
np.seterr(invalid='ignore',over='ignore')
F=np.float32; D=np.float64
libm=ctypes.CDLL('libm.so.6'); libm.expf.restype=ctypes.c_float; libm.expf.argtypes=[ctypes.c_float]
def expf(x): return F(libm.expf(float(x)))
def fma(a,b,c):
    """correctly rounded f32 fma: a*b exact in f64, TwoSum for the add, fix f64->f32 double rounding"""
    p=np.asarray(a,F).astype(D)*np.asarray(b,F).astype(D); c=np.asarray(c,F).astype(D)
    s=p+c; bb=s-p; e=(p-(s-bb))+(c-bb)
    r=s.astype(F)
    lo=np.nextafter(r,F(-np.inf)); hi=np.nextafter(r,F(np.inf))
    # s exactly halfway between two f32 neighbours and a nonzero tail: round toward the tail
    mid_dn=(s==(r.astype(D)+lo.astype(D))/2)&(e<0)&np.isfinite(s)
    mid_up=(s==(r.astype(D)+hi.astype(D))/2)&(e>0)&np.isfinite(s)
    r=np.where(mid_dn,lo,np.where(mid_up,hi,r))
    return r.astype(F)
# note: a*b of two f32 is exact in f64; (exact+ c) rounded to f64 then to f32 could double-round; use exact check below
from fractions import Fraction
def fma_exact(a,b,c):
    a=np.asarray(a,F); b=np.asarray(b,F); c=np.asarray(c,F)
    r=fma(a,b,c)
    return r
def f16(x): return np.asarray(x,F).astype(np.float16).astype(F)
H=lambda s: F(float.fromhex(s))
def v_expf(x):
    x=np.asarray(x,F)
    r=H('0x1.8p23')
    z=fma(x,np.full_like(x,H('0x1.715476p+0')),np.full_like(x,r))
    n=(z-r).astype(F)
    b=fma(-n,np.full_like(x,H('0x1.7f7d1cp-20')),fma(-n,np.full_like(x,H('0x1.62e4p-1')),x))
    e=(z.view(np.int32).astype(np.int64)<<23)&0xffffffff
    k=((e+np.array(F(1)).view(np.int32).astype(np.int64))&0xffffffff).astype(np.uint32).view(F)
    u=(b*b).astype(F)
    c=lambda v: np.full_like(x,H(v))
    j=fma(fma(fma(c('0x1.0e4020p-7'),b,c('0x1.573e2ep-5')),u,fma(c('0x1.555e66p-3'),b,c('0x1.fffdb6p-2'))),u,(c('0x1.ffffecp-1')*b).astype(F))
    out=fma(j,k,k)
    big=np.abs(n)>126
    if big.any():
        # ggml_v_expf slow path
        g=np.where(n<=0,np.uint32(0x82000000),np.uint32(0)).astype(np.uint32)
        s1=(g+np.uint32(0x7f000000)).astype(np.uint32).view(F)
        s2=((e.astype(np.uint32)-g).astype(np.uint32)).view(F)
        d=np.abs(n)>192
        alt=np.where(d,(s1*s1).astype(F),(fma(s2,j,s2)*s1).astype(F))
        out=np.where(big,alt,out)
    return out
def hsum8(l):  # (hi+lo), (0+2,1+3), 0+1  == _mm256 extract/movehl/movehdup
    s=[F(l[4]+l[0]),F(l[5]+l[1]),F(l[6]+l[2]),F(l[7]+l[3])]
    return F(F(s[0]+s[2])+F(s[1]+s[3]))
def soft_max_f32(x,mx):  # ggml_vec_soft_max_f32 (AVX2): y=v_expf(x-max), sum of per-8 hsums in double
    y=v_expf((x-mx).astype(F)); s=D(0)
    for i in range(0,len(x),8): s+=D(hsum8(y[i:i+8]))
    return y,s

TQ=64; TKV=64
def attn_tiled(q,K,V,pos,nkv,scale=F(0.125)):
    """one query row of ggml_compute_forward_flash_attn_ext_tiled; q f32[64], K,V f16->f32 [nkv,64]"""
    S=F(0); M=F(-np.inf); VKQ=np.zeros(V.shape[1],F)
    for ic in range(0,nkv,TKV):
        kt=K[ic:ic+TKV]; vt=V[ic:ic+TKV]
        mask=np.where(np.arange(ic,ic+TKV)<=pos,F(0),F(-np.inf))
        if (mask==-np.inf).all(): continue   # (tile skip / skip[tq]: no contribution)
        # simd_gemm: KQ[j] = fma chain over dk in order, from 0
        kq=np.zeros(TKV,F)
        for dk in range(len(q)): kq=fma(kt[:,dk],np.full(TKV,q[dk],F),kq)
        kq=(kq*scale).astype(F)            # ggml_vec_scale_f32
        kq=(kq+mask).astype(F)             # ggml_vec_add_f32
        tmax=kq.max()
        Mnew=max(M,tmax)
        if Mnew>M:
            ms=expf(M-Mnew) if M!=-np.inf else F(0)
            VKQ=(VKQ*ms).astype(F); S=F(S*ms)
        M=Mnew
        p,s=soft_max_f32(kq,M)
        S=F(D(S)+s)                        # float S += ggml_float
        # simd_gemm(VKQ32, KQ, V32): VKQ[d] = fma chain over kv in order, starting at VKQ
        for j in range(TKV): VKQ=fma(vt[j],np.full_like(VKQ,p[j]),VKQ)
    inv=F(F(1)/S) if S!=0 else F(0)
    return (VKQ*inv).astype(F)

def vec_dot_f16(x,y):  # ggml_vec_dot_f16 AVX2/F16C: 4 accumulators x 8 lanes, step 32
    n=len(x); acc=np.zeros((4,8),F)
    for i in range(0,n,32):
        for j in range(4): acc[j]=fma(x[i+8*j:i+8*j+8],y[i+8*j:i+8*j+8],acc[j])
    a0=(acc[0]+acc[2]).astype(F); a1=(acc[1]+acc[3]).astype(F); a0=(a0+a1).astype(F)
    t0=(a0[:4]+a0[4:]).astype(F)
    return F(F(t0[0]+t0[1])+F(t0[2]+t0[3]))
def attn_one_chunk(q,K,V,pos,nkv,scale=F(0.125),contractS=True):
    qh=f16(q); S=F(0); M=F(-np.inf); VKQ16=np.zeros(V.shape[1],F)
    for ic in range(nkv):
        if ic>pos: continue
        s=F(vec_dot_f16(K[ic],qh)*scale); s=F(s+F(0))
        Mold=M; ms=F(1); vs=F(1)
        if s>M:
            M=s; ms=expf(Mold-M) if Mold!=-np.inf else F(0)
            VKQ16=f16(VKQ16*ms)                       # ggml_vec_scale_f16
        else: vs=expf(s-M)
        VKQ16=f16(fma(V[ic],np.full_like(VKQ16,vs),VKQ16))  # ggml_vec_mad_f16
        S=fma(S,ms,vs) if contractS else F(F(S*ms)+vs)
    inv=F(F(1)/S)
    return (VKQ16*inv).astype(F)

# --- ondo's current recipe (tinyBLAS-like) for comparison
def attn_ondo(q,K,V,pos,scale=F(0.125)):
    qh=f16(q); n=pos+1
    sc=np.zeros(n,F)
    for j in range(n):
        acc=np.zeros(8,F)
        for i in range(0,64,8): acc=fma(K[j,i:i+8],qh[i:i+8],acc)
        sc[j]=hsum8(acc)
    sc=(sc*scale).astype(F); mx=sc.max()
    y=v_expf((sc-mx).astype(F)); s=D(0)
    for i in range(0,n,8): l=np.zeros(8,F); l[:len(y[i:i+8])]=y[i:i+8]; s+=D(hsum8(l))
    p=f16((y*F(1.0/s)).astype(F))
    acc=np.zeros((64,8),F)
    for j in range(n): acc[:,j%8]=fma(V[j],np.full(64,p[j],F),acc[:,j%8])
    return np.array([hsum8(a) for a in acc],F)

def load(path):
    out,order,ids=pickle.load(open(path,'rb'))
    def T(name):
        a,typ,ne,nb=out[name]; return np.frombuffer(a.tobytes(),dtype=np.float32 if typ==0 else np.float16).astype(F)
    return out,order,ids,T
if __name__=='__main__':
    out,order,ids,T=load(sys.argv[1]); N=len(ids)
    layers=[int(a) for a in sys.argv[2].split(',')] if len(sys.argv)>2 else [0]
    npos=int(sys.argv[3]) if len(sys.argv)>3 else min(N,8)
    nkv=256
    for l in layers:
        Q=T(f'Qcur-{l}').reshape(N,9,64); Kc=f16(T(f'Kcur-{l}').reshape(N,3,64)); Vc=f16(T(f'Vcur-{l}').reshape(N,3,64))
        ref=T(f'kqv_out-{l}').reshape(N,9,64)
        K=np.zeros((nkv,3,64),F); V=np.zeros((nkv,3,64),F); K[:N]=Kc; V[:N]=Vc
        meths=os.environ.get('METHODS','tiled,one_chunk,ondo').split(',')
        for name,fn in [('tiled',lambda q,k,v,p: attn_tiled(q,k,v,p,nkv)),('one_chunk',lambda q,k,v,p: attn_one_chunk(q,k,v,p,nkv)),('ondo',lambda q,k,v,p: attn_ondo(q,k,v,p))]:
            if name not in meths: continue
            res=[]
            for p in range(npos):
                nd=0; md=0
                for h in range(9):
                    o=fn(Q[p,h],K[:,h//3],V[:,h//3],p)
                    d=(o!=ref[p,h]).sum(); nd+=d; md=max(md,np.abs(o-ref[p,h]).max())
                res.append((p,int(nd),float(md)))
            bad=[r for r in res if r[1]]
            print(f'layer {l} {name:9s}: positions 0..{npos-1}: {npos-len(bad)} bit-exact; first mismatches (pos,#diff of 576,maxabs):',bad[:5],flush=True)

def attn_tiled_all(Q,K,V,N,scale=F(0.125)):
    """vectorized over all N query rows of one head: identical arithmetic to attn_tiled"""
    nkv=K.shape[0]; S=np.zeros(N,F); M=np.full(N,-np.inf,F); VKQ=np.zeros((N,V.shape[1]),F)
    rows=np.arange(N)[:,None]
    vexpf=np.vectorize(lambda x: expf(x) if x!=-np.inf else F(0),otypes=[F])
    for ic in range(0,nkv,TKV):
        mask=np.where(np.arange(ic,ic+TKV)[None,:]<=rows,F(0),F(-np.inf)).astype(F)
        live=~(mask==-np.inf).all(1)
        if not live.any(): continue
        kt=K[ic:ic+TKV]; vt=V[ic:ic+TKV]
        kq=np.zeros((N,TKV),F)
        for dk in range(Q.shape[1]): kq=fma(kt[None,:,dk],Q[:,dk:dk+1],kq)
        kq=((kq*scale).astype(F)+mask).astype(F)
        tmax=kq.max(1); Mnew=np.maximum(M,tmax)
        up=live&(Mnew>M)
        ms=np.where(up,vexpf(np.where(up,M-Mnew,F(0)).astype(F)),F(1)).astype(F)
        ms=np.where(up&(M==-np.inf),F(0),ms)
        VKQ=np.where(up[:,None],(VKQ*ms[:,None]).astype(F),VKQ); S=np.where(up,(S*ms).astype(F),S)
        M=np.where(live,Mnew,M)
        p=v_expf((kq-M[:,None]).astype(F))
        p=np.where(live[:,None],p,F(0))
        s=np.zeros(N,D)
        for i in range(0,TKV,8):
            l=p[:,i:i+8]
            a=[(l[:,4+k]+l[:,k]).astype(F) for k in range(4)]
            s+=((a[0]+a[2]).astype(F)+(a[1]+a[3]).astype(F)).astype(F).astype(D)
        S=np.where(live,(S.astype(D)+s).astype(F),S)
        for j in range(TKV): VKQ=fma(vt[j][None,:],p[:,j:j+1],VKQ)
    inv=np.where(S!=0,(F(1)/S).astype(F),F(0)).astype(F)
    return (VKQ*inv[:,None]).astype(F)

def check_all(path,layers):
    out,order,ids,T=load(path); N=len(ids); nkv=256
    for l in layers:
        Q=T(f'Qcur-{l}').reshape(N,9,64); Kc=f16(T(f'Kcur-{l}').reshape(N,3,64)); Vc=f16(T(f'Vcur-{l}').reshape(N,3,64))
        ref=T(f'kqv_out-{l}').reshape(N,9,64)
        K=np.zeros((nkv,3,64),F); V=np.zeros((nkv,3,64),F); K[:N]=Kc; V[:N]=Vc
        o=np.stack([attn_tiled_all(Q[:,h],K[:,h//3],V[:,h//3],N) for h in range(9)],1)
        bad=np.where((o!=ref).any((1,2)))[0]
        print(f'{path} layer {l:2d}: tiled emulation bit-exact at {N-len(bad)}/{N} positions; mismatching positions {bad[:10]} maxabs {np.abs(o-ref).max():.3g}',flush=True)
