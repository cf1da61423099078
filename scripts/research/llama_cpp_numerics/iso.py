import numpy as np, sys
exec(open('/tmp/fwd.py').read().split("if __name__")[0])
D=lambda n: dump[n].astype(np.float64).reshape(-1)
cfg={}
worst={}
for l in range(30):
    p=f'blk.{l}.'
    pairs=[('attn_v',f'attn_norm-{l}',f'Vcur-{l}'),('attn_q',f'attn_norm-{l}',f'Qcur-{l}'),('attn_k',f'attn_norm-{l}',f'Kcur-{l}'),
           ('attn_output',f'kqv_out-{l}',f'attn_out-{l}'),('ffn_gate',f'ffn_norm-{l}',f'ffn_gate-{l}'),('ffn_up',f'ffn_norm-{l}',f'ffn_up-{l}'),('ffn_down',f'ffn_swiglu-{l}',f'ffn_out-{l}')]
    for w,i,o in pairs:
        y=mm41(p+w+'.weight',D(i),cfg); r=D(o)
        e=np.abs(y-r).max()/np.abs(r).max()
        worst[w]=max(worst.get(w,0),e)
    # non-matmul ops
    x=D(f'ffn_inp-{l}'); e=np.abs(f32(rms(x,W[p+'ffn_norm.weight']))-D(f'ffn_norm-{l}')).max()/np.abs(D(f'ffn_norm-{l}')).max(); worst['ffn_norm']=max(worst.get('ffn_norm',0),e)
    g=D(f'ffn_gate-{l}');u=D(f'ffn_up-{l}'); s=g/(1+np.exp(-g))*u; e=np.abs(s-D(f'ffn_swiglu-{l}')).max()/np.abs(s).max(); worst['swiglu']=max(worst.get('swiglu',0),e)
    v=f16(D(f'Vcur-{l}')); a=np.concatenate([v.reshape(3,64)[hh//3] for hh in range(9)]); e=np.abs(a-D(f'kqv_out-{l}')).max(); worst['kqv(f16 V) abs']=max(worst.get('kqv(f16 V) abs',0),e)
    e=np.abs(f32(D(f'ffn_inp-{l}')+D(f'ffn_out-{l}'))-D(f'l_out-{l}')).max(); worst['l_out add abs']=max(worst.get('l_out add abs',0),e)
h=D('result_norm'); de,qe=emb
dx,qx,_=q8(h); lg=(de*dx[None,:]*np.einsum('rbk,bk->rb',qe,qx)).sum(1)
print('output matmul isolated: max abs', np.abs(lg-dump['__logits']).max())
x=D('l_out-29'); print('result_norm isolated', np.abs(f32(rms(x,W['output_norm.weight']))-h).max())
for k,v in worst.items(): print('%-16s worst rel/abs err %.3e'%(k,v))
