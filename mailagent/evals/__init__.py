"""The learning loop: eval cases from reps' finals and flags (`cases`), graders (`graders`,
`judges`, `sets`), eval runs as a regression gate (`runs`, `replay`, `candidate`), the pre-send
gate (`gate`), classifiers reps ship (`classifiers`), knowledge suggestions (`suggestions`),
exports (`export`) and the daily quality figures (`quality`).

It sits between the pipeline and the agent: it replays the agent and reads knowledge and policy,
and the pipeline calls its pure parts (the gate, the classifiers' labels) before deciding a
draft. It imports nothing from the pipeline, review, worker, web or CLI."""
