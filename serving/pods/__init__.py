"""CTV ad pods: the pod auction (`auction`), filling pods from the snapshot and buyers'
bids (`fill`) and the VAST 4.2 ad pod answer (`vast`). Only requests that ask for a pod
reach this package; the single-slot path does not import it."""
