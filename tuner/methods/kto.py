"""``kto``: Kahneman-Tversky optimisation on single answers labelled desirable or not, with TRL's KTOTrainer
(:mod:`tuner.kto`)."""

from tuner.methods.record import Method

METHOD = Method(
    name="kto", trl_config=("trl", "KTOConfig"), data="labelled", trainer="tuner.kto", defaults={"beta": 0.1}
)
