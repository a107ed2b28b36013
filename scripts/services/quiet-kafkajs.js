// kafkajs 2.2.4 on Node 24 schedules a timer with a negative delay (tulios/kafkajs#1751): Node clamps it
// to 1 ms and prints a TimeoutNegativeWarning once per process. Harmless; this keeps it out of the output.
const emitWarning = process.emitWarning.bind(process)
process.emitWarning = (warning, ...rest) => {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type
  if (type === 'TimeoutNegativeWarning' || warning?.name === 'TimeoutNegativeWarning') return
  emitWarning(warning, ...rest)
}
