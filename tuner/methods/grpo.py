"""``grpo``: online RL on prompts (generate, score with rewards or an OpenAI grader, update), with TRL's
GRPOTrainer (:mod:`tuner.grpo`); reinforcement fine-tuning is grpo with ``graders``."""

from tuner.methods.record import Method

METHOD = Method(
    name="grpo",
    trl_config=("trl", "GRPOConfig"),
    data="prompts",
    trainer="tuner.grpo",
    defaults={"num_generations": 4, "max_completion_length": 64},
)
