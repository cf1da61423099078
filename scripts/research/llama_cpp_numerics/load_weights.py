import numpy as np, gguf, pickle, json, sys
r=gguf.GGUFReader('/root/.cache/ondo/models/SmolLM2-135M-Instruct.Q4_1.gguf')
T={t.name:t for t in r.tensors}
def q41(name):
    t=T[name]; raw=np.asarray(t.data).view(np.uint8)
    rows=raw.shape[0]; raw=raw.reshape(rows,-1,20)
    d=raw[:,:,0:2].copy().view(np.float16)[...,0].astype(np.float64)
    m=raw[:,:,2:4].copy().view(np.float16)[...,0].astype(np.float64)
    qs=raw[:,:,4:]
    q=np.concatenate([qs&15, qs>>4],axis=2).astype(np.float64)  # (rows,nb,32)
    return d,m,q
def q80(name):
    t=T[name]; raw=np.asarray(t.data).view(np.uint8)
    rows=raw.shape[0]; raw=raw.reshape(rows,-1,34)
    d=raw[:,:,0:2].copy().view(np.float16)[...,0].astype(np.float64)
    q=raw[:,:,2:].copy().view(np.int8).astype(np.float64)
    return d,q
W={}
for t in r.tensors:
    if t.tensor_type.name=='Q4_1': W[t.name]=('q41',)+q41(t.name)
    elif t.tensor_type.name=='F32': W[t.name]=np.asarray(t.data).astype(np.float64).reshape(-1)
emb=q80('token_embd.weight')
pickle.dump((W,emb),open('/tmp/weights.pkl','wb'))
