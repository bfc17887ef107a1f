"""The sidecar injector: a mutating admission webhook that adds the sidecar to annotated pods
(the way the OpenTelemetry Operator, Istio and Dapr inject theirs). `template` is what the chart
renders for it, `mutate` turns one AdmissionReview into a JSON patch, `server` serves it over
TLS."""
