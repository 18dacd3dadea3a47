"""The real-Go1 side of the deploy stack: the low-level UDP packets, the bridge's safety logic, the
bridge process (UDP at 500 Hz <-> the ROS 2 topics of `dhal.deploy.topics`) and a fake Go1 for tests.

Modules, from the wire up: `packets` (LowCmd/LowState bytes), `remote` (the wireless remote bytes),
`joint_map` (SDK motor order <-> contract joint order, by name), `config` (`BridgeConfig`),
`safety` (the mode machine and clamps, no I/O), `transport` (the UDP socket), `bridge` (the 500 Hz
loop), `bridge_node` (rclpy node and `main`), `fake_robot` (a loopback Go1 for tests).
"""
