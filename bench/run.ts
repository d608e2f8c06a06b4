/** `npm run bench`: every benchmark, each running the reference tool side by side. */
import { benchSaveLoad } from './save-load.js';

const only = process.argv[2];
if (only === undefined || only === 'save-load') await benchSaveLoad();
if (only === undefined || only === 'compression') await import('./compression.js');
if (only === undefined || only === 'dockerfile-parse')
  await (await import('./dockerfile-parse.js')).benchDockerfileParse();
if (only === undefined || only === 'context-walk')
  await (await import('./context-walk.js')).benchContextWalk();
if (only === undefined || only === 'build') await (await import('./build.js')).benchBuild();
if (only === undefined || only === 'registry') await (await import('./registry.js')).benchRegistry();
if (only === undefined || only === 'registry-server')
  await (await import('./registry-server.js')).benchRegistryServer();
if (only === undefined || only === 'lint') await (await import('./lint.js')).benchLint();
if (only === undefined || only === 'analyze') await (await import('./analyze.js')).benchAnalyze();
if (only === undefined || only === 'container-run')
  await (await import('./container-run.js')).benchContainerRun();
