// Validates every document of the given Kubernetes manifests: built-in kinds
// against the official schemas (npm kubernetes-models), the MPIJob against
// the fields the MPI Operator (kubeflow.org/v2beta1) requires, and the
// kustomization against the files it lists. Exit 0 when all pass.
import fs from 'fs';
import path from 'path';
import YAML from 'yaml';

let failures = 0;
const fail = (file, msg) => { failures++; console.log(`FAIL ${file}: ${msg}`); };

async function builtin(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const mod = group === '' ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
  try {
    return (await import(mod))[kind];
  } catch (e) {
    return null;
  }
}

async function checkPodTemplate(file, where, tmpl) {
  const Pod = await builtin('v1', 'Pod');
  try {
    new Pod({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: tmpl.spec }).validate();
  } catch (e) {
    fail(file, `${where}: pod template: ${e.message}`);
  }
}

async function checkMPIJob(file, doc) {
  const s = doc.spec || {};
  if (!doc.metadata || !doc.metadata.name) fail(file, 'MPIJob: metadata.name missing');
  const specs = s.mpiReplicaSpecs || {};
  if (!specs.Launcher) fail(file, 'MPIJob: spec.mpiReplicaSpecs.Launcher missing');
  if (!specs.Worker) fail(file, 'MPIJob: spec.mpiReplicaSpecs.Worker missing');
  if (specs.Launcher && specs.Launcher.replicas !== 1) fail(file, 'MPIJob: Launcher.replicas must be 1');
  for (const role of ['Launcher', 'Worker']) {
    const r = specs[role];
    if (!r) continue;
    if (!Number.isInteger(r.replicas) || r.replicas < 1) fail(file, `MPIJob: ${role}.replicas must be a positive integer`);
    if (!r.template || !r.template.spec || !Array.isArray(r.template.spec.containers) || !r.template.spec.containers.length)
      fail(file, `MPIJob: ${role}.template.spec.containers missing`);
    else await checkPodTemplate(file, `MPIJob ${role}`, r.template);
  }
  if (s.slotsPerWorker !== undefined && (!Number.isInteger(s.slotsPerWorker) || s.slotsPerWorker < 1))
    fail(file, 'MPIJob: slotsPerWorker must be a positive integer');
  if (s.mpiImplementation && !['OpenMPI', 'Intel', 'MPICH'].includes(s.mpiImplementation))
    fail(file, `MPIJob: unknown mpiImplementation ${s.mpiImplementation}`);
  const rp = s.runPolicy || {};
  if (rp.cleanPodPolicy && !['None', 'Running', 'All'].includes(rp.cleanPodPolicy))
    fail(file, `MPIJob: unknown cleanPodPolicy ${rp.cleanPodPolicy}`);
  // The workers must see sfpd's socket and enough /dev/shm for OpenMPI.
  const w = specs.Worker && specs.Worker.template.spec;
  if (w) {
    const vols = (w.volumes || []).map(v => v.name);
    const mounts = (w.containers[0].volumeMounts || []);
    if (!mounts.some(m => m.mountPath === '/dev/shm')) fail(file, 'MPIJob: Worker lacks a /dev/shm volume');
    for (const m of mounts) if (!vols.includes(m.name)) fail(file, `MPIJob: mount ${m.name} has no volume`);
  }
}

const files = process.argv.slice(2);
let kustomized = null;
const seen = new Set();
for (const file of files) {
  const base = path.basename(file);
  let docs;
  try {
    docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    fail(base, `YAML: ${e.message}`);
    continue;
  }
  for (const d of docs) {
    if (d.errors.length) { fail(base, `YAML: ${d.errors[0].message}`); continue; }
    const doc = d.toJS();
    if (!doc) continue;
    if (doc.kind === 'Kustomization') { kustomized = { file, doc }; continue; }
    if (!doc.apiVersion || !doc.kind) { fail(base, 'apiVersion/kind missing'); continue; }
    seen.add(base);
    if (doc.kind === 'MPIJob') {
      if (doc.apiVersion !== 'kubeflow.org/v2beta1') fail(base, `MPIJob apiVersion ${doc.apiVersion}`);
      await checkMPIJob(base, doc);
      console.log(`ok   ${base}: ${doc.kind} ${doc.metadata.name} (MPI Operator fields)`);
      continue;
    }
    const Model = await builtin(doc.apiVersion, doc.kind);
    if (!Model) { fail(base, `no schema for ${doc.apiVersion} ${doc.kind}`); continue; }
    try {
      new Model(doc).validate();
      console.log(`ok   ${base}: ${doc.kind} ${doc.metadata && doc.metadata.name}`);
    } catch (e) {
      fail(base, `${doc.kind}: ${e.message}`);
    }
  }
}
if (kustomized) {
  const dir = path.dirname(kustomized.file);
  for (const r of kustomized.doc.resources || []) {
    if (!fs.existsSync(path.join(dir, r))) fail('kustomization.yaml', `resource ${r} missing`);
  }
  console.log(`ok   kustomization.yaml: ${(kustomized.doc.resources || []).length} resources present`);
}
console.log(`${failures} failures`);
process.exit(failures ? 1 : 0);
