import sys, torch
from dhal.policies.bench_modes import BenchModesConfig
from dhal.policies.modes import HybridModes
from dhal.policies.slds import make_system, make_dataset
seed=int(sys.argv[1]); init=int(sys.argv[2]) if len(sys.argv)>2 else seed
cfg=BenchModesConfig(clocked_guard=True, assignment="posterior", learned_noise=True, test_sequences=256,
  decoder_sees_frame=True, kl_weight=0.9, kl_mean_over_modes=True, state_dim=12, jump_prob=0.002, seed=seed, progress=False)
torch.set_num_threads(1)
g=torch.Generator().manual_seed(cfg.seed); system=make_system(cfg,g); train=make_dataset(cfg,system,cfg.train_sequences,g)
mean=train.histories.mean(0); std=train.histories.std(0).clamp_min(1e-3)
s=init*1000+17*3; torch.manual_seed(s)
m=HybridModes(cfg.modes_config(3)); opt=torch.optim.Adam(m.parameters(), lr=cfg.learning_rate)
gen=torch.Generator().manual_seed(s+1); ig=torch.Generator().manual_seed(s+2)
H=(train.histories-mean)/std; n=H.shape[0]; acc=torch.zeros(3); accr=torch.zeros(3)
for step in range(cfg.steps):
    idx=torch.randint(0,n,(cfg.batch_size,),generator=ig)
    loss,st=m.dynamics_loss(H[idx],train.next_state[idx],train.next_contacts[idx],generator=gen)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step()
    with torch.no_grad():
        p=torch.softmax(m.mode_logits(H[idx]),-1); acc+=p.mean(0)
        # purity: for each expert, fraction of its argmax samples in the dominant true mode
        am=p.argmax(-1); tm=train.modes[idx]
    if (step+1)%100==0:
        conf=torch.zeros(3,3); conf.index_put_((tm,am),torch.ones(len(am)),accumulate=True)
        print(step+1, [round(x,3) for x in (acc/100).tolist()], conf.int().tolist(), round(float(loss),3), flush=True); acc.zero_()
