import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// Built into dist/ and served by Django (whitenoise) under /static/.
export default defineConfig({
  plugins: [react()],
  base: '/static/',
  build: {
    manifest: true,
    outDir: 'dist',
    rollupOptions: { input: 'src/main.tsx' },
  },
})
