"""``sft``: supervised fine-tuning on chats, text or labelled rows, with TRL's SFTTrainer (:mod:`tuner.sft`)."""

from tuner.methods.record import Method

METHOD = Method(
    name="sft",
    trl_config=("trl", "SFTConfig"),
    data="chats",
    trainer="tuner.sft",
    defaults={"assistant_only_loss": True},
)
