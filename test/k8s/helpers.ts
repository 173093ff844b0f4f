/** Shared helpers of the Kubernetes tests: synth a chart with Testing.synth and find objects in it. */
import { Testing } from 'cdk8s';
import { NamespaceChart, TaskSchedulerChart } from '../../cdk8s/chart';
import { ENVIRONMENTS, type AutoscalerKind, type EnvironmentName, type EnvironmentSettings } from '../../cdk8s/settings';
import { readSources, type Sources } from '../../cdk8s/sources';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

let cached: Sources | undefined;
export function sources(): Sources {
  return (cached ??= readSources());
}

export function environment(name: EnvironmentName, autoscaler?: AutoscalerKind): EnvironmentSettings {
  const env = ENVIRONMENTS[name];
  return autoscaler ? { ...env, autoscaling: { ...env.autoscaling, kind: autoscaler } } : env;
}

/** Testing.synth of the namespace chart and the main chart of an environment. */
export function synth(env: EnvironmentSettings, src: Sources = sources()): K8sObject[] {
  const app = Testing.app();
  return [...Testing.synth(new NamespaceChart(app, 'ns', env)), ...Testing.synth(new TaskSchedulerChart(app, 'test', env, src))] as K8sObject[];
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

export function container(workload: K8sObject, name: string): any {
  const c = workload.spec.template.spec.containers.find((x: { name: string }) => x.name === name);
  if (!c) throw new Error(`${workload.kind}/${workload.metadata.name} has no container ${name}`);
  return c;
}

/** Every container and init container of every pod template. */
export function allContainers(objects: K8sObject[]): { owner: string; c: any; pod: any }[] {
  return objects.flatMap((o) => {
    const pod = o.spec?.template?.spec;
    if (!pod) return [];
    return [...(pod.initContainers ?? []), ...pod.containers].map((c: any) => ({ owner: `${o.kind}/${o.metadata.name}/${c.name}`, c, pod }));
  });
}
