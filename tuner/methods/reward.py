"""``reward``: a reward model that scores answers, trained on pairs with TRL's RewardTrainer (:mod:`tuner.reward`)."""

from tuner.methods.record import Method

METHOD = Method(name="reward", trl_config=("trl", "RewardConfig"), data="pairs", trainer="tuner.reward", scores=True)
