/**
 * Schema validation of rendered objects with kubernetes-models (Kubernetes OpenAPI schemas) and
 * its prometheus-operator and KEDA CRD models. Versions 4.x/0.4.x: the 5.x line needs Node 22.
 */
type Validatable = { validate(): void };
type ModelClass = new (data: unknown) => Validatable;

/** Module path of a model: core `v1` lives at kubernetes-models/v1, groups at kubernetes-models/<group>/<version>. */
function modulePath(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'keda.sh') return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

export function modelFor(apiVersion: string, kind: string): ModelClass {
  const mod = require(modulePath(apiVersion, kind)) as Record<string, ModelClass>;
  const model = mod[kind];
  if (!model) throw new Error(`no model for ${apiVersion} ${kind}`);
  return model;
}

/** Validates one object; returns the problems (empty when valid). */
export function validateObject(obj: { apiVersion: string; kind: string; metadata?: { name?: string } }): string[] {
  try {
    new (modelFor(obj.apiVersion, obj.kind))(obj).validate();
    return [];
  } catch (err) {
    const e = err as Error & { errors?: { instancePath?: string; message?: string; params?: unknown }[] };
    const details = e.errors?.map((x) => `${x.instancePath} ${x.message} ${JSON.stringify(x.params)}`) ?? [e.message];
    return details.map((d) => `${obj.kind}/${obj.metadata?.name}: ${d}`);
  }
}
