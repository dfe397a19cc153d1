// The parts of libpod's REST answers (v4 API, Podman 4.3) that the daemon reads. Everything is
// optional: the shapes come from another program and bad or missing fields must never crash us.

export interface InspectNetwork {
  IPAddress?: string;
  IPPrefixLen?: number;
  GlobalIPv6Address?: string;
  Gateway?: string;
  Aliases?: string[] | null;
}

export interface PortBinding {
  HostIp?: string;
  HostPort?: string;
}

export interface ContainerInspect {
  Id: string;
  Name?: string;
  State?: { Running?: boolean; Status?: string; Health?: { Status?: string } };
  Config?: {
    Hostname?: string;
    Labels?: Record<string, string> | null;
    Healthcheck?: { Test?: string[] } | null;
  };
  NetworkSettings?: {
    Networks?: Record<string, InspectNetwork> | null;
    Ports?: Record<string, PortBinding[] | null> | null;
  };
  HostConfig?: { NetworkMode?: string };
}

export interface NetworkSubnet {
  subnet?: string;
  gateway?: string;
}

/** `GET /libpod/networks/json` element. */
export interface NetworkInfo {
  name: string;
  driver?: string;
  network_interface?: string;
  subnets?: NetworkSubnet[] | null;
  dns_enabled?: boolean;
  labels?: Record<string, string> | null;
}

/** `GET /libpod/containers/json` element (only what a resync needs). */
export interface ContainerListItem {
  Id: string;
  State?: string;
}

/** One line of `GET /libpod/events?stream=true`. */
export interface PodmanEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  timeNano?: number;
}
