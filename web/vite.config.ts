import { defineConfig } from 'vitest/config'

// The node serves dist/ at its root (px-node `web_dir`); `npm run dev` serves the dApp on
// :5173 and VITE_PX_NODE names the node to call (`px devnet` allows that origin by CORS).
export default defineConfig({
  build: { target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 400 },
  server: { host: '127.0.0.1', port: 5173 },
  test: { include: ['test/**/*.test.ts'] },
})
