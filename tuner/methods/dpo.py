"""``dpo``: direct preference optimisation on pairs, against a frozen reference, with TRL's DPOTrainer
(:mod:`tuner.dpo`)."""

from tuner.methods.record import Method

METHOD = Method(name="dpo", trl_config=("trl", "DPOConfig"), data="pairs", trainer="tuner.dpo", defaults={"beta": 0.1})
