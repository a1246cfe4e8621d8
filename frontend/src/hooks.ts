import { useEffect, useState } from 'react'

// The part of the URL after '#', e.g. '/datasets/3'; the app's only router.
export function useHashRoute(): string {
  const read = () => window.location.hash.replace(/^#/, '') || '/datasets'
  const [route, setRoute] = useState(read)
  useEffect(() => {
    const onChange = () => setRoute(read())
    window.addEventListener('hashchange', onChange)
    return () => window.removeEventListener('hashchange', onChange)
  }, [])
  return route
}

export function navigate(route: string): void {
  window.location.hash = route
}
