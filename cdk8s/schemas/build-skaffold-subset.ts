/**
 * Writes skaffold-v4beta14.subset.json: the part of Skaffold's v4beta14 configuration schema
 * (docs-v2/content/en/schemas/v4beta14.json in the Skaffold repository, Skaffold 2.19+) that
 * skaffold.yaml uses, for offline validation. The full schema is 240 KB and ships in no npm
 * package, so the definitions below were transcribed by hand: the same definition names, the
 * same property names and the same `additionalProperties: false`, without the descriptions.
 * Definitions skaffold.yaml does not use are `{}` (anything goes) — they are listed by name, so
 * a key of theirs is still accepted where Skaffold accepts it, but not checked further.
 *   npx tsx cdk8s/schemas/build-skaffold-subset.ts [OUT]   (default: beside this file)
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const ref = (name: string) => ({ $ref: `#/definitions/${name}` });
const str = { type: 'string' };
const bool = { type: 'boolean' };
const int = { type: 'integer' };
const strings = { type: 'array', items: str };
const stringMap = { type: 'object', additionalProperties: str };
const arrayOf = (name: string) => ({ type: 'array', items: ref(name) });
const closed = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  properties,
  additionalProperties: false,
  ...(required.length ? { required } : {}),
});
/** Skaffold models "one of these builders/build environments" as anyOf over closed variants. */
const variants = (common: Record<string, unknown>, choices: Record<string, unknown>) => ({
  type: 'object',
  anyOf: [closed(common), ...Object.entries(choices).map(([k, v]) => closed({ ...common, [k]: v }))],
});

const notModelled = {};

const artifactCommon = {
  image: str,
  context: str,
  sync: notModelled,
  requires: { type: 'array', items: closed({ image: str, alias: str }, ['image']) },
  hooks: ref('BuildHooks'),
  platforms: strings,
  runtimeType: str,
};

const definitions = {
  SkaffoldConfig: closed(
    {
      apiVersion: str,
      kind: str,
      metadata: ref('Metadata'),
      requires: notModelled,
      build: ref('BuildConfig'),
      test: notModelled,
      manifests: ref('RenderConfig'),
      deploy: ref('DeployConfig'),
      portForward: arrayOf('PortForwardResource'),
      resourceSelector: notModelled,
      verify: notModelled,
      customActions: notModelled,
      profiles: arrayOf('Profile'),
    },
    ['apiVersion', 'kind'],
  ),
  Metadata: closed({ name: str, labels: stringMap, annotations: stringMap }),
  BuildConfig: variants(
    { hooks: ref('BuildHooks'), artifacts: arrayOf('Artifact'), insecureRegistries: strings, tagPolicy: ref('TagPolicy'), platforms: strings },
    { local: ref('LocalBuild'), googleCloudBuild: notModelled, cluster: notModelled },
  ),
  BuildHooks: closed({ before: arrayOf('HostHook'), after: arrayOf('HostHook') }),
  Artifact: {
    ...variants(artifactCommon, {
      docker: ref('DockerArtifact'),
      bazel: notModelled,
      jib: notModelled,
      kaniko: notModelled,
      buildpacks: notModelled,
      custom: notModelled,
      ko: notModelled,
    }),
    required: ['image'],
  },
  DockerArtifact: closed({
    dockerfile: str,
    target: str,
    buildArgs: stringMap,
    network: str,
    addHost: strings,
    cacheFrom: strings,
    cacheTo: strings,
    cliFlags: strings,
    pullParent: bool,
    noCache: bool,
    squash: bool,
    secrets: notModelled,
    ssh: str,
  }),
  LocalBuild: closed({ push: bool, tryImportMissing: bool, useDockerCLI: bool, useBuildkit: bool, concurrency: int }),
  TagPolicy: closed({ gitCommit: notModelled, sha256: notModelled, envTemplate: notModelled, dateTime: notModelled, customTemplate: notModelled, inputDigest: notModelled }),
  RenderConfig: closed({
    rawYaml: strings,
    remoteManifests: notModelled,
    kustomize: notModelled,
    helm: notModelled,
    kpt: strings,
    hooks: ref('RenderHooks'),
    transform: notModelled,
    validate: notModelled,
    output: str,
  }),
  RenderHooks: closed({ before: arrayOf('RenderHookItem'), after: arrayOf('PostRenderHookItem') }),
  RenderHookItem: closed({ host: ref('HostHook') }),
  PostRenderHookItem: closed({ host: closed({ command: strings, os: strings, dir: str, withChange: bool }, ['command']) }),
  HostHook: closed({ command: strings, os: strings, dir: str }, ['command']),
  DeployConfig: closed({
    docker: notModelled,
    helm: notModelled,
    kpt: notModelled,
    kubectl: ref('KubectlDeploy'),
    cloudrun: notModelled,
    statusCheck: bool,
    statusCheckDeadlineSeconds: int,
    tolerateFailuresUntilDeadline: bool,
    kubeContext: str,
    logs: ref('LogsConfig'),
  }),
  KubectlDeploy: closed({ flags: ref('KubectlFlags'), remoteManifests: strings, defaultNamespace: str, hooks: ref('DeployHooks') }),
  KubectlFlags: closed({ global: strings, apply: strings, delete: strings, disableValidation: bool }),
  DeployHooks: closed({ before: arrayOf('DeployHookItem'), after: arrayOf('DeployHookItem') }),
  DeployHookItem: closed({ host: ref('HostHook'), container: closed({ command: strings, podName: str, containerName: str }, ['podName', 'command']) }),
  LogsConfig: closed({ prefix: { type: 'string', enum: ['container', 'podAndContainer', 'auto', 'none'] }, jsonParse: closed({ fields: strings }) }),
  PortForwardResource: closed({
    resourceType: str,
    resourceName: str,
    namespace: str,
    port: { anyOf: [str, int] },
    address: str,
    localPort: int,
  }),
  Profile: closed(
    {
      name: str,
      activation: arrayOf('Activation'),
      requiresAllActivations: bool,
      patches: arrayOf('JSONPatch'),
      build: ref('BuildConfig'),
      test: notModelled,
      manifests: ref('RenderConfig'),
      deploy: ref('DeployConfig'),
      portForward: arrayOf('PortForwardResource'),
      resourceSelector: notModelled,
      verify: notModelled,
      customActions: notModelled,
    },
    ['name'],
  ),
  Activation: closed({ env: str, kubeContext: str, command: str }),
  JSONPatch: closed({ op: str, path: str, from: str, value: {} }, ['path']),
};

const schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $comment: 'Subset of Skaffold skaffold/v4beta14 (see cdk8s/schemas/build-skaffold-subset.ts). Generated; do not edit.',
  type: 'object',
  anyOf: [ref('SkaffoldConfig')],
  definitions,
};
writeFileSync(process.argv[2] ?? path.join(__dirname, 'skaffold-v4beta14.subset.json'), `${JSON.stringify(schema, null, 2)}\n`);
