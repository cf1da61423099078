import ctypes, numpy as np, llama_cpp, os, sys, pickle
from llama_cpp import llama_cpp as L
libdir=os.path.dirname(llama_cpp.__file__)+'/lib/'
gb=ctypes.CDLL(libdir+'libggml-base.so')
gb.ggml_get_name.restype=ctypes.c_char_p; gb.ggml_get_name.argtypes=[ctypes.c_void_p]
gb.ggml_nbytes.restype=ctypes.c_size_t; gb.ggml_nbytes.argtypes=[ctypes.c_void_p]
gb.ggml_is_contiguous.restype=ctypes.c_bool; gb.ggml_is_contiguous.argtypes=[ctypes.c_void_p]
gb.ggml_backend_tensor_get.argtypes=[ctypes.c_void_p,ctypes.c_void_p,ctypes.c_size_t,ctypes.c_size_t]
gb.ggml_op_desc.restype=ctypes.c_char_p; gb.ggml_op_desc.argtypes=[ctypes.c_void_p]
out={}
order=[]
def cb(t, ask, ud):
    if ask: return True
    name=gb.ggml_get_name(t).decode()
    typ=ctypes.c_int.from_address(t).value
    ne=[ctypes.c_int64.from_address(t+16+8*i).value for i in range(4)]
    op=gb.ggml_op_desc(t).decode()
    order.append((name,op,typ,ne))
    if typ in (0,1) and gb.ggml_is_contiguous(t):
        nb=gb.ggml_nbytes(t)
        buf=(ctypes.c_uint8*nb)()
        gb.ggml_backend_tensor_get(t,buf,0,nb)
        a=np.frombuffer(bytes(buf),dtype=np.float32 if typ==0 else np.float16).copy()
        out[name]=a.reshape([n for n in ne[::-1]]).squeeze()
    return True
CB=L.ggml_backend_sched_eval_callback(cb)
L.llama_backend_init()
mp=L.llama_model_default_params()
model=L.llama_model_load_from_file(b'/root/.cache/ondo/models/SmolLM2-135M-Instruct.Q4_1.gguf',mp)
cp=L.llama_context_default_params()
cp.n_ctx=256; cp.n_batch=256; cp.n_ubatch=256; cp.n_threads=2; cp.n_threads_batch=2
cp.cb_eval=CB; cp.cb_eval_user_data=None
if len(sys.argv)>1 and sys.argv[1]=='f32kv': cp.type_k=0; cp.type_v=0
ctx=L.llama_init_from_model(model,cp)
toks=(L.llama_token*1)(504)
b=L.llama_batch_get_one(toks,1)
print('decode',L.llama_decode(ctx,b))
lg=np.ctypeslib.as_array(L.llama_get_logits(ctx),shape=(49152,)).copy()
out['__logits']=lg
pickle.dump((out,order),open('/tmp/dump%s.pkl'%('' if len(sys.argv)<2 else sys.argv[1]),'wb'))
for o in order[:40]: print(o)
print(len(order))
ref=np.load('/tmp/ref504.npy'); print('logit diff vs Llama()', np.abs(lg-ref).max())
