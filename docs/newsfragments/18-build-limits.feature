Builds honour max-layer-size for each local archive ADD unpacks, and min-free-space for the context upload, every step and ADD's unpacking (a plain error naming the rule; nothing left behind).
