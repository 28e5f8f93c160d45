import os, time
os.environ["WHENET_OFFICIAL_MIRROR"]="../shared/whenet-official"; os.environ["FSANET_CACHE"]="/tmp/whcache"; os.environ["HF_HUB_OFFLINE"]="1"
import fsanet
print(fsanet.list_models(pretrained=True)[-3:])
t=time.time(); m = fsanet.create_model("whenet.300w_lp_panoptic", pretrained=True); print(time.time()-t, m.name, m.config["trained_on"])
t=time.time(); m = fsanet.create_model("whenet.300w_lp_panoptic", pretrained=True); print(time.time()-t)
o = fsanet.optimize_for_inference(m)
import torch
x = torch.rand(2,3,224,224)*255
print((o(x)-m(x)).abs().max())
