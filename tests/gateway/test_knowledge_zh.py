"""A Chinese knowledge base end to end: upload, search and ``@kb`` chat through the API, on the fake engine."""

from __future__ import annotations

ARTICLES = {
    "rlhf.txt": "RLHF的实现非常复杂，需要进行大量的源码级改造和系统级工程优化。所以要是不具备大模型底层的研发能力，"
    "不建议做RLHF。",
    "lora.txt": "LoRA是在基础模型之外添加一个小的模型，这个小模型的训练成本和算力需求都非常低。",
    "dpo.txt": "DPO不需要一个奖励模型，所以使用成本要比强化学习低很多。",
}
QUESTION = "为什么不建议做RLHF？"


def test_a_chinese_upload_is_searched_and_its_passage_reaches_the_chat_prompt(gateway):
    with gateway.http() as http:
        assert http.post("/v1/knowledge_bases", json={"name": "zh"}).status_code == 201
        files = [("files", (name, text.encode("utf-8"))) for name, text in ARTICLES.items()]
        assert http.post("/v1/knowledge_bases/zh/documents", files=files).status_code == 201
        hits = http.post("/v1/knowledge_bases/zh/search", json={"query": QUESTION, "mode": "bm25"}).json()["data"]
        assert hits[0]["filename"] == "rlhf.txt" and "不建议做RLHF" in hits[0]["text"]
    reply = gateway.client().chat.completions.create(
        model="fake-base@zh", messages=[{"role": "user", "content": QUESTION}], extra_body={"rag": {"top_k": 1}}
    )
    system, question = gateway.engine.calls[-1][0]
    assert "不建议做RLHF" in system.content and "LoRA" not in system.content and "奖励模型" not in system.content
    assert question.content == QUESTION
    assert reply.model_extra["citations"][0]["filename"] == "rlhf.txt"
