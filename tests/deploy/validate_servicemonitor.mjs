// Validates ServiceMonitor objects (a JSON array on stdin) against the prometheus-operator
// CRD's openAPIV3Schema, as compiled to ajv validators by @kubernetes-models/prometheus-operator.
// Prints one line per problem and exits 1 if any object is invalid.
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
let failed = 0;
for (const object of objects) {
  try {
    new ServiceMonitor(object).validate();
    console.log(`valid: ServiceMonitor ${object.metadata?.name}`);
  } catch (error) {
    failed += 1;
    console.log(`invalid: ServiceMonitor ${object.metadata?.name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
