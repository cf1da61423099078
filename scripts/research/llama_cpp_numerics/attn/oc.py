import sys
args=sys.argv[1:]; sys.argv=['x']
exec(open('/tmp/attn_exact.py').read().replace("if __name__=='__main__':","if False:"))
out,order,ids,T=load(args[0]); N=len(ids); nkv=256
for l in [int(x) for x in args[1].split(',')]:
    Q=T(f'Qcur-{l}').reshape(N,9,64); K=np.zeros((nkv,3,64),F); V=np.zeros((nkv,3,64),F)
    K[:N]=f16(T(f'Kcur-{l}').reshape(N,3,64)); V[:N]=f16(T(f'Vcur-{l}').reshape(N,3,64)); ref=T(f'kqv_out-{l}').reshape(N,9,64)
    for cS in (True,False):
        bad=[p for p in range(N) if any((attn_one_chunk(Q[p,h],K[:,h//3],V[:,h//3],p,nkv,contractS=cS)!=ref[p,h]).any() for h in range(9))]
        print(f'{args[0]} layer {l}: one_chunk (S=fma(S,ms,vs)={cS}) bit-exact at {N-len(bad)}/{N}; bad {bad[:8]}',flush=True)
