"""``orpo``: odds-ratio preference optimisation on pairs, no reference model, with TRL's ORPOTrainer from
``trl.experimental`` (:mod:`tuner.orpo`)."""

from tuner.methods.record import Method

METHOD = Method(name="orpo", trl_config=("trl.experimental.orpo", "ORPOConfig"), data="pairs", trainer="tuner.orpo")
