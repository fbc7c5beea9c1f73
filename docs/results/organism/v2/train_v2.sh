# the v2 run (docs/results/organism/v2/README.md); world seed 0, 1 torch thread
lens organism train --out organism-v2 --steps 6000 --seed 0 --threads 1 --quiet \
  --d-model 128 --d-mlp 384 --n-layers 6 --n-heads 4 \
  --kind-weight facts=0.50 --kind-weight mixed=0.04 --kind-weight parallel=0.22 \
  --kind-weight dictionary=0.08 --kind-weight chat=0.16 \
  --pivot-fact-share 0.75 --parallel-pivot-share 1.0 --chat-pivot-share 0.5 \
  --refusal-examples-per-language 3

# the v2b probe (same, but 3000 steps and chat_pivot_share 0.9)
lens organism train --out organism-v2b --steps 3000 --seed 0 --threads 1 --quiet \
  --d-model 128 --d-mlp 384 --n-layers 6 --n-heads 4 \
  --kind-weight facts=0.50 --kind-weight mixed=0.04 --kind-weight parallel=0.22 \
  --kind-weight dictionary=0.08 --kind-weight chat=0.16 \
  --pivot-fact-share 0.75 --parallel-pivot-share 1.0 --chat-pivot-share 0.9 \
  --refusal-examples-per-language 3
