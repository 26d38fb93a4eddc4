// What each score the viewer shows means: the hover text of check scores, retrieval scores and
// fused passage scores, so a bare "0.031" is never left unexplained.

const CHECKS = {
  citations: "citation F1 (0-1): how many answer sentences carry a valid [DOC n] citation whose document supports them (recall), and how many citations support their sentence (precision)",
  faithfulness: "faithfulness (0-1): the share of the answer's claims that the documents support",
  relevancy: "relevancy (0-1): how close the answer's sentences are to the question (similarity and topic words); low means the answer talks about something else",
  self_consistency: "self-consistency (0-1): the share of sampled answers that agree with the chosen one; low means the model is unsure",
  answerable: "answerability (0-1): how well the documents cover what the question asks; below the threshold the workflow abstains",
  attribution: "attribution: how much each source drives the answer (ablating it changes the answer's likelihood)",
};

/** The hover text of a check's score. */
export function checkHelp(kind, check = {}) {
  const base = CHECKS[kind] || `${kind}: the check's score (0-1, higher is better)`;
  const threshold = typeof check.threshold === "number" ? `; it passes at ${check.threshold} or more` : "";
  return base + threshold + (check.reason ? `\n${check.reason}` : "");
}

export const RETRIEVAL_SCORE = "retrieval score: how well this passage matched the query, as the retriever ranks it (hybrid search fuses dense-vector and keyword ranks); compare it only with other hits of the same query";
export const FUSED_SCORE = "fused score: reciprocal rank fusion over the run's search queries, the sum of 1 / (k + rank) over every query's result list that holds this passage (k = 60); only its order among this run's passages means anything, not its size";

/** The hover text of a passage's score: a fused score where the passage comes from the run's
 * state after a fuse step, the retriever's own otherwise. */
export function passageScoreHelp(fromState, fused) {
  return fromState && fused ? FUSED_SCORE : RETRIEVAL_SCORE;
}

/** Whether a declared graph has a fuse step (its passages then carry fused scores). */
export function hasFuse(step) {
  if (!step || typeof step !== "object") return false;
  if (step.kind === "node") return step.type === "fuse";
  return Object.values(step).some((v) => (Array.isArray(v) ? v.some(hasFuse) : v && typeof v === "object" && hasFuse(v)));
}
