import numpy as np, pickle, sys
W,emb=pickle.load(open('/tmp/weights.pkl','rb'))
dump,order=pickle.load(open('/tmp/dump.pkl','rb'))
f16=lambda x: np.asarray(x,np.float64).astype(np.float16).astype(np.float64)
f32=lambda x: np.asarray(x,np.float64).astype(np.float32).astype(np.float64)
def q8(x, rnd='even', dmode='amax127'):
    xb=x.reshape(-1,32); amax=np.abs(xb).max(1)
    d=amax/127
    if dmode=='f32':
        d=(amax.astype(np.float32)/np.float32(127)).astype(np.float64); idd=np.where(amax>0,np.float32(127)/np.float32(amax),0).astype(np.float32)
        v=(xb.astype(np.float32)*idd[:,None]).astype(np.float64)
    else:
        idd=np.where(amax>0,127/amax,0); v=xb*idd[:,None]
    q=np.round(v) if rnd=='even' else np.sign(v)*np.floor(np.abs(v)+0.5)
    return f16(d), q, d
def mm41(name,x,cfg):
    _,dw,mw,qw=W[name]
    if not cfg.get('quant',True):
        wd=dw[...,None]*qw+mw[...,None]
        return wd.reshape(wd.shape[0],-1)@x
    dx,qx,draw=q8(x,cfg.get('rnd','even'),cfg.get('dmode','f32'))
    if cfg.get('sraw',True): s=f32(f32(draw)*qx.sum(1))
    else: s=dx*qx.sum(1)
    if cfg.get('s16',True): s=f16(s)
    dots=np.einsum('rbk,bk->rb',qw,qx)
    return (dw*dx[None,:]*dots + mw*s[None,:]).sum(1)
def rms(x,w,eps=1e-5):
    return x/np.sqrt(np.mean(x*x)+eps)*w
def run(cfg,tok=504,compare=False):
    de,qe=emb
    x=(de[tok][:,None]*qe[tok]).reshape(-1)
    if cfg.get('f32',True): x=f32(x)
    cmp=[]
    def C(name,v):
        if compare and name in dump:
            ref=dump[name].astype(np.float64).reshape(-1)
            cmp.append((name, np.abs(v-ref).max(), np.abs(ref).max()))
    C('embd',x)
    for l in range(30):
        p=f'blk.{l}.'
        h=rms(x,W[p+'attn_norm.weight'])
        if cfg.get('f32',True): h=f32(h)
        C(f'attn_norm-{l}',h)
        v=mm41(p+'attn_v.weight',h,cfg)
        C(f'Vcur-{l}',v)
        if cfg.get('v16',True): v=f16(v)
        a=np.concatenate([v.reshape(3,64)[hh//3] for hh in range(9)])
        C(f'kqv_out-{l}',a)
        o=mm41(p+'attn_output.weight',a,cfg)
        C(f'attn_out-{l}',o)
        x=x+o
        if cfg.get('f32',True): x=f32(x)
        C(f'ffn_inp-{l}',x)
        h=rms(x,W[p+'ffn_norm.weight'])
        if cfg.get('f32',True): h=f32(h)
        C(f'ffn_norm-{l}',h)
        g=mm41(p+'ffn_gate.weight',h,cfg); u=mm41(p+'ffn_up.weight',h,cfg)
        C(f'ffn_gate-{l}',g); C(f'ffn_up-{l}',u)
        s=g/(1+np.exp(-g))*u
        if cfg.get('f32',True): s=f32(s)
        C(f'ffn_swiglu-{l}',s)
        f=mm41(p+'ffn_down.weight',s,cfg)
        C(f'ffn_out-{l}',f)
        x=x+f
        if cfg.get('f32',True): x=f32(x)
        C(f'l_out-{l}',x)
    h=rms(x,W['output_norm.weight'])
    if cfg.get('f32',True): h=f32(h)
    C('result_norm',h)
    de,qe=emb
    if cfg.get('quant',True):
        dx,qx,_=q8(h,cfg.get('rnd','even'))
        lg=(de*dx[None,:]*np.einsum('rbk,bk->rb',qe,qx)).sum(1)
    else:
        lg=(de[...,None]*qe).reshape(qe.shape[0],-1)@h
    C('result_output',lg)
    return lg,cmp
if __name__=='__main__':
    ref=dump['__logits'].astype(np.float64)
    top=np.argsort(-ref)[:20]
    for name,cfg in [('pure f64',dict(quant=False,f32=False,v16=False)),('q8 ondo-like (s from f16 d)',dict(sraw=False,dmode='amax127')),('q8 s from f32 d',{})]:
        lg,cmp=run(cfg,compare=True)
        d=lg[top]-ref[top]
        print(name,'top20 diff max %.4f mean %.4f'%(np.abs(d).max(),d.mean()), 'tok29 %.4f vs %.4f'%(lg[29],ref[29]))
        if name=='q8 s from f32 d':
            for c in cmp: print('  %-16s %.3e  (|ref| %.3g)'%c)
