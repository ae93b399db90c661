// The Arduino port's umbrella header, for a build against a TFLite-Micro source tree: the
// sketch includes the TFLite-Micro headers it uses itself.
