"""LoRA weight diagnostics: what did an adapter do to the base weights?

For every LoRA-adapted linear layer: how big the change is (‖ΔW‖_F and ‖ΔW‖_F / ‖W‖_F, with
ΔW = scale · B · A); how many directions it really uses (the singular values of ΔW and their
entropy-based *effective rank*, Roy & Vetterli 2007); whether it created *intruder dimensions*
(Shuttleworth, Andreas, Torralba & Sharma, "LoRA vs Full Fine-tuning: An Illusion of Equivalence",
arXiv:2410.21228, 2024). The parts: ``spectra`` and ``intruders`` (the linear algebra), ``result`` (the
data), ``run`` (a model's or a run's adapter), ``explain`` (the plain-language reading). Figures are the
GUI's (``gui/render/figures.py``).
"""
