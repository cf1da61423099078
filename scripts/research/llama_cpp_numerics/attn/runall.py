import sys
args=sys.argv[1:]; sys.argv=['x']
exec(open('/tmp/attn_exact.py').read().replace("if __name__=='__main__':","if False:"))
check_all(args[0],[int(x) for x in args[1].split(',')] if len(args)>1 else range(30))
