/** Creates a target from its settings; each kind's module is imported only when a namespace uses it. */
import type { TargetSettings } from '../config/schema.js'
import type { Target } from './target.js'

export async function openTarget(settings: TargetSettings): Promise<Target> {
  switch (settings.type) {
    case 'kv': {
      const { KvTarget } = await import('./kv/kv-target.js')
      return KvTarget.open({ name: settings.name, path: settings.path })
    }
    case 'http': {
      const { HttpTarget } = await import('./http/http-target.js')
      return new HttpTarget({ name: settings.name, url: settings.url, method: settings.method, timeoutMs: settings.timeoutMs, headers: settings.headers })
    }
    case 'file': {
      const { FileTarget } = await import('./file/file-target.js')
      return new FileTarget({ name: settings.name, path: settings.path })
    }
    case 'kafka': {
      const { KafkaTarget } = await import('./kafka/kafka-target.js')
      return new KafkaTarget({ name: settings.name, topic: settings.topic, timeoutMs: settings.timeoutMs, cluster: settings.cluster })
    }
  }
}
