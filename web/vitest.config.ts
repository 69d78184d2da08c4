import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'node',
    include: ['tests/**/*.test.ts', 'src/**/*.test.ts'],
    watch: false,
    // The real-browser test starts a devnet service (tens of seconds on a first run) and a
    // browser; its steps wait for mined user operations. Its own waits are tighter than this.
    testTimeout: 240_000,
    hookTimeout: 240_000,
    teardownTimeout: 30_000,
    // One service and one browser at a time: the machine has two cores.
    fileParallelism: false,
  },
});
