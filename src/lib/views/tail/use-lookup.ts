/** Runs the failure-history lookup for the selected mutation; a newer selection wins over a late answer. */
import { useEffect, useState } from 'react'

export type LookupState<T> = { status: 'idle' } | { status: 'loading' } | { status: 'done'; value: T } | { status: 'failed'; message: string }

export function useLookup<T>(lookup: (id: string) => Promise<T>, id: string | null): LookupState<T> {
  const [state, setState] = useState<LookupState<T>>({ status: 'idle' })
  useEffect(() => {
    if (id === null) {
      setState({ status: 'idle' })
      return
    }
    let current = true
    setState({ status: 'loading' })
    lookup(id).then(
      (value) => current && setState({ status: 'done', value }),
      (error: unknown) => current && setState({ status: 'failed', message: (error as Error).message }),
    )
    return () => {
      current = false
    }
  }, [lookup, id])
  return state
}
