import type { Run } from './types'

// The evaluation of a detector or a segmenter (filled in by issue 13's evaluation work).
export function PredictionEvaluation({ run }: { run: Run }) {
  void run
  return null
}
