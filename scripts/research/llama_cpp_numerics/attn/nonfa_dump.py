import ctypes, numpy as np, llama_cpp, os, sys, pickle, json
from llama_cpp import llama_cpp as L
libdir=os.path.dirname(llama_cpp.__file__)+'/lib/'
gb=ctypes.CDLL(libdir+'libggml-base.so')
gb.ggml_get_name.restype=ctypes.c_char_p; gb.ggml_get_name.argtypes=[ctypes.c_void_p]
gb.ggml_nbytes.restype=ctypes.c_size_t; gb.ggml_nbytes.argtypes=[ctypes.c_void_p]
gb.ggml_is_contiguous.restype=ctypes.c_bool; gb.ggml_is_contiguous.argtypes=[ctypes.c_void_p]
gb.ggml_backend_tensor_get.argtypes=[ctypes.c_void_p,ctypes.c_void_p,ctypes.c_size_t,ctypes.c_size_t]
gb.ggml_op_desc.restype=ctypes.c_char_p; gb.ggml_op_desc.argtypes=[ctypes.c_void_p]
LAYS=[int(x) for x in os.environ.get('LAYS','0').split(',')]
out={}; order=[]
def cb(t, ask, ud):
    if ask: return True
    name=gb.ggml_get_name(t).decode()
    typ=ctypes.c_int.from_address(t).value
    ne=[ctypes.c_int64.from_address(t+16+8*i).value for i in range(4)]
    nb=[ctypes.c_size_t.from_address(t+48+8*i).value for i in range(4)]
    op=gb.ggml_op_desc(t).decode()
    # src pointers: ggml_tensor layout: type(4)+pad, buffer ptr(8), ne[4] @16, nb[4] @48, op @80, op_params[16 int32] @84 .. 148, flags @148, src[10] @152
    op_params=[ctypes.c_int32.from_address(t+84+4*i).value for i in range(16)]
    srcs=[]
    for i in range(10):
        s=ctypes.c_void_p.from_address(t+152+8*i).value
        if s: srcs.append(gb.ggml_get_name(s).decode())
    order.append((name,op,typ,ne,nb,srcs,op_params))
    try: lay=int(name.rsplit('-',1)[1])
    except: lay=-1
    if lay>=0 and lay not in LAYS: return True
    if os.environ.get('KEEP') and not name.split('-')[0] in os.environ['KEEP'].split(','): return True
    if typ in (0,1):
        nbytes=gb.ggml_nbytes(t)
        buf=(ctypes.c_uint8*nbytes)()
        gb.ggml_backend_tensor_get(t,buf,0,nbytes)
        a=np.frombuffer(bytes(buf),dtype=np.uint8).copy()
        out[name]=(a,typ,ne,nb); out[name+'@'+op]=(a,typ,ne,nb)
    return True
CB=L.ggml_backend_sched_eval_callback(cb)
L.llama_backend_init()
mp=L.llama_model_default_params()
model=L.llama_model_load_from_file(b'/root/.cache/ondo/models/SmolLM2-135M-Instruct.Q4_1.gguf',mp)
cp=L.llama_context_default_params()
cp.n_ctx=256; cp.n_batch=256; cp.n_ubatch=256; cp.n_threads=2; cp.n_threads_batch=2
cp.flash_attn_type=L.LLAMA_FLASH_ATTN_TYPE_DISABLED; cp.cb_eval=CB; cp.cb_eval_user_data=None
print('flash_attn default', getattr(cp,'flash_attn',None), getattr(cp,'flash_attn_type',None))
ctx=L.llama_init_from_model(model,cp)
f=json.load(open('/work/main/tests/fixtures/reference/logits_smollm2.json'))
ch=[c for c in f['chunks'] if c['lang']==sys.argv[1] and c['chunk']==int(sys.argv[2])][0]
N=int(sys.argv[3]); ids=ch['ids'][:N]
toks=(L.llama_token*N)(*ids)
b=L.llama_batch_get_one(toks,N)
print('decode',L.llama_decode(ctx,b))
pickle.dump((out,order,ids),open(sys.argv[4],'wb'))
[print(o) for o in order if o[0].endswith("-0")]
print(len(order))
