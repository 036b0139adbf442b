"""The sandbox: throwaway servers and sample EnerLink data for the demo, tests and benchmarks."""
