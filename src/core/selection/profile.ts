/** What a matched machine boots: a kernel, initrds and arguments, plus the configs it fetches. */
export interface BootSpec {
  kernel: string
  initrd: string[]
  args: string[]
}

/** A matchbox profile. Field names keep matchbox's spelling so that its JSON files load unchanged. */
export interface Profile {
  id: string
  name: string
  ignition_id?: string
  generic_id?: string
  boot?: BootSpec
}
