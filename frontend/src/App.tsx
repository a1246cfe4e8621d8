import { useCallback, useEffect, useState } from 'react'
import { api, ApiError } from './api'
import { AuthPage } from './AuthPage'
import { AccountPage } from './AccountPage'
import { DatasetsTab } from './DatasetsTab'
import { DatasetViewer } from './DatasetViewer'
import { ProjectsTab } from './ProjectsTab'
import { JobPage } from './JobPage'
import { JobsPage } from './JobsPage'
import { ProjectPage } from './ProjectPage'
import { RunPage } from './RunPage'
import { EndpointPage } from './EndpointPage'
import { navigate, useHashRoute } from './hooks'
import type { User } from './types'

export default function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined)
  const [error, setError] = useState('')
  const route = useHashRoute()

  const refresh = useCallback(async () => {
    try {
      const me = await api<{ authenticated: boolean; user?: User }>('/api/auth/me/')
      setUser(me.authenticated ? me.user! : null)
    } catch (e) {
      setError((e as ApiError).message)
      setUser(null)
    }
  }, [])

  useEffect(() => { refresh() }, [refresh])

  if (user === undefined) return <div className="centered">Loading…</div>
  if (user === null) return <AuthPage onSignedIn={setUser} initialError={error} />

  const signOut = async () => {
    await api('/api/auth/logout/', { method: 'POST' }).catch(() => undefined)
    await api('/api/auth/me/')  // fresh CSRF cookie for the next sign-in
    setUser(null)
  }

  const parts = route.split('/').filter(Boolean)
  let page
  if (parts[0] === 'datasets' && parts[1]) page = <DatasetViewer datasetId={Number(parts[1])} />
  else if (parts[0] === 'jobs' && parts[1]) page = <JobPage jobId={Number(parts[1])} />
  else if (parts[0] === 'jobs') page = <JobsPage />
  else if (parts[0] === 'projects' && parts[1]) page = <ProjectPage projectId={Number(parts[1])} />
  else if (parts[0] === 'runs' && parts[1]) page = <RunPage runId={Number(parts[1])} />
  else if (parts[0] === 'endpoints') page = <EndpointPage endpointId={parts[1] ? Number(parts[1]) : null} />
  else if (parts[0] === 'projects') page = <ProjectsTab />
  else if (parts[0] === 'account') page = <AccountPage user={user} onChanged={refresh} />
  else page = <DatasetsTab />

  const tab = (name: string, label: string) => (
    <a className={parts[0] === name ? 'tab active' : 'tab'} href={`#/${name}`}>{label}</a>
  )
  return (
    <div className="app">
      <header className="topbar">
        <span className="brand" onClick={() => navigate('/datasets')}>NNC Web</span>
        <nav>{tab('datasets', 'Datasets')}{tab('projects', 'Projects')}{tab('jobs', 'Jobs')}</nav>
        <span className="spacer" />
        {user.is_staff && <a className="link" href="/admin/">Admin</a>}
        <a className="link" href="#/account" data-testid="account-link">{user.username}</a>
        <button className="secondary" onClick={signOut}>Sign out</button>
      </header>
      <main>{page}</main>
    </div>
  )
}
