import { Text } from 'ink'

import { bar, etaSeconds, formatAmount, formatEta, fraction, ratePerSec, type ProgressState } from './progress-model.js'

const WIDTH = 30

/** `label ██████░░░░ 42% 4200/10000 mutations 1200/s ETA 00:05` (no bar while the total is unknown). */
export function ProgressBar({ state }: { state: ProgressState }) {
  const frac = fraction(state)
  const unit = state.unit === 'bytes' ? '' : ` ${state.unit}`
  const amount = `${formatAmount(state.done, state.unit)}${state.total === null ? '' : `/${formatAmount(state.total, state.unit)}`}${unit}`
  const rate = `${formatAmount(ratePerSec(state), state.unit)}${state.unit === 'bytes' ? '' : ''}/s`
  return (
    <Text>
      {`${state.label} `}
      {frac !== null && <Text color={state.finished ? 'green' : 'cyan'}>{bar(frac, WIDTH)}</Text>}
      {frac !== null ? ` ${Math.floor(frac * 100)}%` : ''}
      {`  ${amount}  ${rate}  ${state.finished ? 'done' : `ETA ${formatEta(etaSeconds(state))}`}`}
    </Text>
  )
}
