"""loader: live BPF objects (maps, programs) created from ``ebpfspec`` specs.

Arrives with the backends issue; importing it today gives only this docstring.
"""
